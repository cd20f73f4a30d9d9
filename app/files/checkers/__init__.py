"""One module per upload format; each registers itself with app.files.formats.register."""
