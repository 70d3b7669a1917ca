"""The endless stream: anchors, their do-not-use ledger, and what shows them."""
