"""One module (or package) per source. Each writes landing rows with their origin and models them."""
