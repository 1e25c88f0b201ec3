"""One module per vendor REST API; :mod:`gateway.dialects.base` holds what they share.

A dialect module parses its vendor's requests into one RPC request, and renders the
RPC's response or status in its vendor's exact shapes. Rules only that vendor has live in
its module, as data where possible; nothing is copied between dialects.
"""
