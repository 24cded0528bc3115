"""Evidence: the content-addressed blob store, custody chain, bundles and track analysis."""
