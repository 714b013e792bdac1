//! The pixel-space DCGAN baseline
