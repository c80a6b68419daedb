# Sourced by Dawn's scripts. rust-toolchain.toml pins "1.95.0"; on machines where that
# release is installed only as "stable", register it under its version so rustup never
# reaches for the network.
if command -v rustup >/dev/null 2>&1 && ! rustup run 1.95.0 rustc --version >/dev/null 2>&1; then
  stable_dir="$(rustup run stable rustc --print sysroot 2>/dev/null || true)"
  if [ -n "$stable_dir" ] && rustup run stable rustc --version 2>/dev/null | grep -q '^rustc 1\.95\.0 '; then
    rustup toolchain link 1.95.0 "$stable_dir"
  fi
fi
