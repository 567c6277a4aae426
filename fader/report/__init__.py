"""What a person looks at: edit grids (`grids`), training curves (`curves`), the HTML page
(`page`), and the render stage that writes them all (`render`)."""
