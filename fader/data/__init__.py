"""Data: CelebA's on-disk format, the sources that write it, preprocessing, the prepared dataset.

- `celeba`: the format (attribute and partition files, the crop), shared by every source;
- `sources/`: where raw images come from (synthetic faces, CelebA, Oxford-102 flowers);
- `preprocess`: crop, resize and pack a raw folder into one memory-mapped array;
- `prepared`: reading that array for training and evaluation.
"""
