#!/usr/bin/env python3
"""Extract chapters 1-3 of "Pride and Prejudice" (Jane Austen, 1813; public domain) from
Debian's r-cran-janeaustenr package, without R:

    apt-get download r-cran-janeaustenr && dpkg-deb -x r-cran-janeaustenr_*.deb pkg
    python3 data/ppl/extract_austen.py pkg/usr/lib/R/site-library/janeaustenr/data \
        > data/ppl/pride_and_prejudice_ch1-3.txt

The package keeps each novel as an R character vector (one element per line of the
Project Gutenberg text) in a lazy-load database: Rdata.rdx (a gzipped R serialization)
maps object names to (offset, length) in Rdata.rdb, whose entries are a 4-byte length and
a zlib stream of an R serialization (XDR format). A minimal reader for the few R types
involved is below.
"""
import gzip
import struct
import sys
import zlib

NOVEL = "prideprejudice"
FIRST_LINE, END_LINE = "Chapter 1", "Chapter 4"  # chapters 1..3


class Unserializer:
    def __init__(self, data):
        assert data[:2] == b"X\n", "not an XDR serialization"
        self.d, self.p, self.refs = data, 2, []
        version = self.i32()
        self.i32(), self.i32()  # writer R version, minimal reader version
        if version == 3:
            n = self.i32()  # native encoding name
            self.p += n

    def i32(self):
        (v,) = struct.unpack_from(">i", self.d, self.p)
        self.p += 4
        return v

    def attrs(self, has_attr):
        """Attributes as a dict (only names is used)."""
        return pairlist_dict(self.obj()) if has_attr else {}

    def obj(self):
        flags = self.i32()
        typ, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if typ in (254, 253, 242, 251):  # NILVALUE, EMPTYENV, BASEENV, MISSINGARG
            return None
        if typ == 255:  # REFSXP
            return self.refs[(flags >> 8) - 1]
        if typ == 1:  # SYMSXP
            sym = self.obj()
            self.refs.append(sym)
            return sym
        if typ == 9:  # CHARSXP
            n = self.i32()
            if n == -1:
                return None
            s = self.d[self.p : self.p + n].decode("utf-8")
            self.p += n
            return s
        if typ == 2:  # LISTSXP (pairlist): attributes, tag, car, cdr
            attr = self.attrs(has_attr)
            tag = self.obj() if has_tag else None
            return ("pairlist", tag, self.obj(), self.obj(), attr)
        n = self.i32()
        if typ in (16, 19):  # STRSXP, VECSXP
            v = [self.obj() for _ in range(n)]
        elif typ in (10, 13):  # LGLSXP, INTSXP
            v = list(struct.unpack_from(">%di" % n, self.d, self.p))
            self.p += 4 * n
        elif typ == 14:  # REALSXP
            v = list(struct.unpack_from(">%dd" % n, self.d, self.p))
            self.p += 8 * n
        else:
            raise ValueError("R type %d not handled" % typ)
        names = self.attrs(has_attr).get("names")
        return dict(zip(names, v)) if names else v


def pairlist_dict(pl):
    out = {}
    while pl is not None:
        _, tag, car, pl, _ = pl
        out[tag] = car
    return out


def main():
    folder = sys.argv[1]
    with open(folder + "/Rdata.rdx", "rb") as f:
        index = Unserializer(gzip.decompress(f.read())).obj()
    off, n = (int(x) for x in index["variables"][NOVEL])
    with open(folder + "/Rdata.rdb", "rb") as f:
        f.seek(off)
        blob = f.read(n)
    lines = Unserializer(zlib.decompress(blob[4:])).obj()
    start, end = lines.index(FIRST_LINE), lines.index(END_LINE)
    sys.stdout.write("\n".join(lines[start:end]).strip() + "\n")


if __name__ == "__main__":
    main()
