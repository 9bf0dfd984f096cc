"""Integrations: the connectors themselves (`connectors/`: one class per provider behind one
interface) and the settings of those a tenant connects (messaging channels first; accounting,
payments and lead sources later), their encrypted credentials and their health."""
