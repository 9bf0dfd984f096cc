"""Client import: a CSV or XLSX file uploaded, read within limits by a worker, its columns
mapped, previewed with per-row errors, and written in chunks."""
