"""The coupled towers and the factory that names them."""
