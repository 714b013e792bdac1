//! Decoder-sampler: latent generator, un-standardise, decode to images
