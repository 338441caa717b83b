#!/bin/sh
# The example's two images, from Debian's packages (debootstrap; this needs
# deb.debian.org or a mirror: MIRROR=...), imported into the running daemon:
#   webapp-db:bookworm    MariaDB, with a first-start entrypoint
#   webapp-php:bookworm   Apache with mod_php and mysqli (the web server), PHP's CLI (the worker)
# About two minutes and 150 MB of downloads. Usage: sh images/build.sh [db|php]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
mirror=${MIRROR:-http://deb.debian.org/debian}
work=$(mktemp -d /tmp/webapp-images.XXXXXX)
trap 'rm -rf "$work"' EXIT

image() {  # NAME PACKAGES FILES-DIR DEST
    name=$1 packages=$2 files=$3 dest=$4
    echo "== $name: debootstrap bookworm + $packages"
    debootstrap --variant=minbase --include="$packages" bookworm "$work/$name" "$mirror" >"$work/$name.log"
    cp -r "$files"/. "$work/$name$dest"
    rm -f "$work/$name/var/www/html/index.html"  # Apache's page: index.php answers instead
    rm -rf "$work/$name"/var/cache/apt/archives/*.deb "$work/$name"/var/lib/apt/lists/*
    tar -C "$work/$name" -cf "$work/$name.tar" .
    corral import "$work/$name.tar" "$name"
    rm -rf "$work/$name" "$work/$name.tar"
}

mkdir -p "$work/db-files/usr/local/bin" "$work/php-files/var/www/html" "$work/php-files/srv"
cp "$here/db/db-entrypoint" "$work/db-files/usr/local/bin/"
cp "$here/php/index.php" "$here/php/health.php" "$work/php-files/var/www/html/"
cp "$here/php/worker.php" "$work/php-files/srv/"
want=${1:-all}
if [ "$want" = all ] || [ "$want" = db ]; then
    image webapp-db:bookworm mariadb-server,mariadb-client "$work/db-files" /
fi
if [ "$want" = all ] || [ "$want" = php ]; then
    image webapp-php:bookworm apache2,libapache2-mod-php,php-cli,php-mysql "$work/php-files" /
fi
