//! `dualspace`: train GANs in the dual (latent) space of an invertible mapping
//! and compare them with a GAN trained on pixels.
//!
//! The CLI validates raw arguments, builds config structs, and calls the
//! library crates; it holds no tensor math.
use clap::{Parser, Subcommand};

mod cmd;
mod common;
mod harness;

/// Train GANs in the dual space of an autoencoder, VAE or PCA, beside a
/// pixel-space DCGAN baseline, and measure both honestly.
#[derive(Parser, Debug)]
#[command(name = "dualspace", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Look at a data set: classes, counts, load time, a grid of samples.
    #[command(subcommand)]
    Data(cmd::data::DataCmd),
    /// Train a mapping (autoencoder, VAE or PCA) from images to codes.
    TrainMap(cmd::map::TrainMapArgs),
    /// Encode a data set's training split into standardised codes.
    Encode(cmd::map::EncodeArgs),
    /// Decode a codes file back into an image grid.
    Decode(cmd::map::DecodeArgs),
    /// Train the MLP GAN on codes written by `encode`.
    TrainLatentGan(cmd::gan::TrainLatentArgs),
    /// Train the pixel-space DCGAN baseline.
    TrainPixelGan(cmd::gan::TrainPixelArgs),
    /// Sample images from a latent GAN (through a map's decoder) or a pixel GAN.
    Sample(cmd::gan::SampleArgs),
    /// The judge classifier whose features the metrics use.
    #[command(subcommand)]
    Judge(cmd::judge::JudgeCmd),
    /// Judge-feature FID, KID, precision/recall, density/coverage and class rates of samples.
    Eval(cmd::judge::EvalArgs),
    /// Test the dual-space claims end to end and write a report.
    Reproduce(cmd::reproduce::ReproduceArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Data(c) => cmd::data::run(c),
        Command::TrainMap(a) => cmd::map::train(a),
        Command::Encode(a) => cmd::map::encode(a),
        Command::Decode(a) => cmd::map::decode(a),
        Command::TrainLatentGan(a) => cmd::gan::train_latent(a),
        Command::TrainPixelGan(a) => cmd::gan::train_pixel(a),
        Command::Sample(a) => cmd::gan::sample(a),
        Command::Judge(c) => cmd::judge::run(c),
        Command::Eval(a) => cmd::judge::eval(a),
        Command::Reproduce(a) => cmd::reproduce::run(a),
    };
    if let Err(e) = result {
        // One line: the context chain joined by ": ", no backtrace.
        eprintln!("error: {}", common::one_line(&e));
        std::process::exit(if common::interrupted() { 130 } else { 1 });
    }
}
