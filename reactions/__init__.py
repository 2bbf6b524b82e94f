"""Chemistry only (RDKit, numpy; no torch): templates, building-block libraries, compatibility index."""
