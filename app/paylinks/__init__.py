"""Pay links and the client's pay page: a signed, expiring, revocable link per invoice, per
notice or per client ("everything you owe"), and the public page it opens."""
