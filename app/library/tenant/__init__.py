"""My templates: a workspace's own versioned milestone templates, cloned from the library or
started blank, edited as a draft and published."""
