"""Resumable uploads: the tus 1.0.0 protocol at ``/api/uploads``.

Core, ``creation``, ``termination``, ``expiration`` and ``checksum`` (sha1, sha256) extensions
(https://tus.io/protocols/resumable-upload). A client creates an upload (``POST`` with
``Upload-Length``), appends to it (``PATCH`` with ``Upload-Offset``), asks where it stands after a
dropped connection (``HEAD``), and, once complete, registers it like a multipart file:
``POST /api/checkpoints`` with the form field ``upload_id``. Other routes take a completed upload
with :func:`server.resumable.service.take_completed`, which hands back a
:class:`~server.storage.StagedFile` and consumes the upload.
"""
