"""Collections cases of a client: promises to pay, disputes, holds, late-payment interest and
the collection terms, on the client page's Collections tab and their own lists."""
