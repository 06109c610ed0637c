"""The monitoring endpoints under the prefix: the app (:mod:`.app`), a module per resource, the
dashboard, access control, and the API's own options. Importing the package imports none of them."""
