//! salon-plugins: the Lua policy host (being built; not used by the gateway yet).
