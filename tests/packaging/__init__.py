"""The wheel and the image: what a deployment gets, checked without the source tree."""
