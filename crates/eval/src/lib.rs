//! Evaluation without downloads: judge classifier, FID/KID/PR/DC, held-out class rate
