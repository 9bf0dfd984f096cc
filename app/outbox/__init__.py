"""The outbox: the write side of messages. Every area writes the messages it means to send here
(one shared table, in the caller's transaction) and hands them to the delivery workers after
commit; `app.messaging` delivers them, tracks their status and shows them."""
