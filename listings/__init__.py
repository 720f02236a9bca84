"""Data products (数据产品): admission lists, classification, rights, certification, lifecycle."""
