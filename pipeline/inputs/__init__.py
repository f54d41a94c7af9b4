"""Inputs: what a page is and how it is found and made ready to send.

``scan`` walks the input tree, ``feed`` runs that walk in a thread of its own, ``pages`` opens a
file as a source of pages (an image, a multi-page TIFF or a PDF through ``pdf``), ``prepare``
makes each image acceptable to the API (Pillow pre-checks, EXIF, fitting the limits), and
``geometry`` maps boxes on an upload back to the source's own frame.

Nothing here speaks HTTP or knows about runs, the state store or the configuration file.
"""
