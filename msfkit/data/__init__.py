"""Where images come from: `images` (safe decoding, every bad file a reason), `inputs` (the one rule
for walking folders, path lists, tables and archives), `archives` (tar / webdataset members),
`datasets` (Fashion-MNIST, in-memory and file datasets, export to class folders)."""
