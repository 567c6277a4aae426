"""Data: the on-disk formats, the sources that write them, preprocessing, the prepared dataset.

- `formats`: the raw folder every source writes (CelebA's layout: attribute and partition
  files), and the prepared folder's file names;
- `sources/`: where raw images come from (synthetic faces, CelebA, Oxford-102 flowers);
- `preprocess`: crop, resize and pack a raw folder into one memory-mapped array;
- `prepared`: reading that array for training and evaluation;
- `align`: any photo framed like CelebA's aligned images.
"""
