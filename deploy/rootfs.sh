#!/usr/bin/env bash
# Lay out the runtime image's files in OUT from a built `celeriac` binary: OUT/rootfs/ is copied
# to / (owned by root), OUT/data/ becomes /data (owned by celeriac, see deploy/Dockerfile).
#
#   /usr/local/bin/celeriac           the binary
#   /lib*/…, /usr/lib*/…              the shared libraries it loads (from ldd: glibc, libm,
#                                     libgcc_s) and the dynamic loader, at the paths ldd prints
#   /etc/passwd, /etc/group           root and the unprivileged user celeriac (UID/GID 10001)
#   /etc/nsswitch.conf                hosts: files dns (both built into glibc 2.34 and later)
#   /etc/ssl/certs/ca-certificates.crt  CA roots for rediss:// and HTTPS (from the build host)
#   /tmp                              1777 (SQLite's temporary files)
#   /data                             (OUT/data) owned by celeriac in the image: SQLite's default database
#
# Used by the builder stage of deploy/Dockerfile and by the image test (tests/e2e/deploy.rs),
# so the image and the test share one layout. No shell, package manager or compiler goes in.
#
# usage: deploy/rootfs.sh BINARY OUT
set -euo pipefail

bin="${1:?usage: rootfs.sh BINARY OUT}"
dest="${2:?usage: rootfs.sh BINARY OUT}"
out="$dest/rootfs"
uid=10001

[ -x "$bin" ] || { echo "rootfs.sh: $bin is not an executable" >&2; exit 1; }
command -v ldd >/dev/null || { echo "rootfs.sh: ldd not found (package libc-bin)" >&2; exit 1; }

mkdir -p "$out/usr/local/bin" "$out/etc/ssl/certs" "$out/tmp" "$dest/data"
cp "$bin" "$out/usr/local/bin/celeriac"

# Each library at the path the loader will look for it, dereferenced (no dangling symlinks).
# ldd lines: "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" and "/lib64/ld-linux-x86-64.so.2 (0x…)".
libs=$(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
if [ -z "$libs" ]; then
  echo "rootfs.sh: ldd lists no libraries for $bin (a static binary needs none)" >&2
fi
for lib in $libs; do
  mkdir -p "$out$(dirname "$lib")"
  cp -L "$lib" "$out$lib"
done

cat >"$out/etc/passwd" <<EOF
root:x:0:0:root:/root:/sbin/nologin
celeriac:x:$uid:$uid:celeriac:/data:/sbin/nologin
EOF
cat >"$out/etc/group" <<EOF
root:x:0:
celeriac:x:$uid:
EOF
echo "hosts: files dns" >"$out/etc/nsswitch.conf"

ca=/etc/ssl/certs/ca-certificates.crt
if [ -f "$ca" ]; then
  cp -L "$ca" "$out$ca"
else
  echo "rootfs.sh: warning: $ca not found; rediss:// and HTTPS will need redis_tls_ca or SSL_CERT_FILE" >&2
fi

chmod 0755 "$out/usr/local/bin/celeriac"
chmod 1777 "$out/tmp"
chmod 0755 "$dest/data"
