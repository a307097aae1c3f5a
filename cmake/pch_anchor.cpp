// Anchor translation unit: dc_pch exists only to build the torch precompiled header once.
namespace dc::detail { int pch_anchor() { return 0; } }
