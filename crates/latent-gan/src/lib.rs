//! The adversarial trainer and the MLP GAN on standardised latent codes
