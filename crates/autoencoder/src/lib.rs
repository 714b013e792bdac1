//! Invertible mappings for dualspace: convolutional autoencoder, VAE and PCA
