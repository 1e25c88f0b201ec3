"""One module per vendor REST API; :mod:`trackd.gateway.dialects.base` holds what they share.

A dialect module parses its vendor's requests into RPC requests (most routes make one),
and renders the responses or status in its vendor's exact shapes. Rules only that vendor
has live in its module, as data where possible, under names that say whose they are;
what every dialect does alike is :mod:`trackd.gateway.dialects.base`'s. What the analytics
SDKs' dialects (Segment, PostHog, Amplitude, Mixpanel) share, a request's messages sent as
BatchTrack and Identify calls and the library's own fields kept apart, is
:mod:`trackd.gateway.dialects.sdk_calls`'; paths two vendors own are
:mod:`trackd.gateway.dialects.shared_paths`'.
"""
