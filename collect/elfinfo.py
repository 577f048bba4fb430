"""Identify an ELF file and find the page-eligible functions it imports or defines (pyelftools).

Used by ``syspage scan`` (issue 9) and by collect, which records the traced executable's
identity in meta.json. Reads only headers, notes, .dynamic and .dynsym (lazily), so a
200 MB shared library costs about what a small one does.

References: the ELF gABI (https://refspecs.linuxfoundation.org/elf/gabi4+/contents.html),
the LSB symbol versioning spec (https://refspecs.linuxfoundation.org/LSB_5.0.0/LSB-Core-generic/LSB-Core-generic/symversion.html),
FreeBSD's ABI note (NT_FREEBSD_ABI_TAG, sys/sys/elf_common.h), NetBSD's (NT_NETBSD_IDENT).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerDefSection, GNUVerNeedSection, GNUVerSymSection
from elftools.elf.sections import NoteSection, SymbolTableSection

ELF_MAGIC = b"\x7fELF"

# EI_OSABI values as pyelftools names them -> our OS names (syspage.schema.OSES)
_OSABI_OS = {
    "ELFOSABI_FREEBSD": "freebsd", "ELFOSABI_NETBSD": "netbsd", "ELFOSABI_OPENBSD": "openbsd",
    "ELFOSABI_SOLARIS": "solaris", "ELFOSABI_LINUX": "linux", "ELFOSABI_GNU": "linux",
}
# ABI note owner names -> OS (sys/sys/elf_common.h on FreeBSD; glibc's NT_GNU_ABI_TAG)
_NOTE_OS = {"FreeBSD": "freebsd", "NetBSD": "netbsd", "OpenBSD": "openbsd", "DragonFly": "dragonfly"}
_GNU_ABI_OS = {"ELF_NOTE_OS_LINUX": "linux", "ELF_NOTE_OS_GNU": "hurd", "ELF_NOTE_OS_SOLARIS2": "solaris",
               "ELF_NOTE_OS_FREEBSD": "freebsd"}


_KNOWN_TYPES = ("ET_EXEC", "ET_DYN", "ET_REL", "ET_CORE")


class NotElfError(Exception):
    """The file is not an ELF file (or too short to be one)."""


@dataclass(frozen=True)
class ElfIdentity:
    path: str
    kind: str                    # executable, pie executable, shared library, object, core
    elf_class: int               # 32 or 64
    endian: str                  # little or big
    machine: str                 # e_machine, e.g. EM_X86_64
    osabi: str                   # EI_OSABI, e.g. ELFOSABI_SYSV
    abi_note: str | None         # "GNU/Linux 3.2.0", "FreeBSD 1400097", ...
    os: str                      # linux, freebsd, netbsd, openbsd, dragonfly, solaris, unknown
    build_id: str | None
    interpreter: str | None
    soname: str | None
    needed: tuple[str, ...]
    static: bool                 # no dynamic section: imports cannot be seen
    imports: tuple[str, ...] = field(default=())   # "name@version" of wanted functions it imports
    defines: tuple[str, ...] = field(default=())   # "name@version" of wanted functions it defines

    def as_row(self) -> dict:
        row = dict(self.__dict__)
        row["needed"] = list(self.needed)
        row["imports"] = list(self.imports)
        row["defines"] = list(self.defines)
        return row


def is_elf(path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) == ELF_MAGIC


def identify(path, functions: frozenset[str] | set[str] = frozenset()) -> ElfIdentity:
    """Identify an ELF file; with ``functions``, also list which of them it imports/defines.

    Raises NotElfError for a non-ELF file, OSError when unreadable, and ELFError (or the
    struct/value errors pyelftools lets through) for a corrupt one; ``syspage scan`` turns
    each into a one-line problem and goes on.
    """
    with open(path, "rb") as fh:
        if fh.read(4) != ELF_MAGIC:
            raise NotElfError(f"{path}: not an ELF file")
        fh.seek(0)
        try:
            return _identify_open(path, fh, functions)
        except OSError as exc:
            # The file opened and read; a failing seek/read now means an offset in the
            # headers points nowhere: corruption, not unreadability.
            raise ELFError(f"an offset in the headers is out of range ({exc.strerror or exc})") from None


def _identify_open(path, fh, functions) -> ElfIdentity:
    elf = ELFFile(fh)
    header = elf.header
    if header["e_type"] not in _KNOWN_TYPES:
        raise ELFError(f"e_type {header['e_type']} is not a program, library, object or core")
    sections = _Sections(elf)
    dynamic = sections.first(DynamicSection)
    interp = _interpreter(elf)
    needed, soname = _dynamic_entries(dynamic)
    abi_note, note_os, build_id = _notes(elf, sections)
    osabi = header["e_ident"]["EI_OSABI"]
    os_name = note_os or _OSABI_OS.get(osabi) or ("linux" if interp and "ld-linux" in interp else "unknown")
    imports, defines = _wanted_symbols(elf, sections, functions) if functions and dynamic is not None else ((), ())
    kind = _kind(header["e_type"], interp, soname)
    if any(sec is not None and sec["sh_type"] == "SHT_NOBITS"
           for sec in (sections.by_name.get(".dynamic"), sections.by_name.get(".text"))):
        # A separate debug-info file (objcopy --only-keep-debug): headers without contents.
        kind = "debug info"
    return ElfIdentity(
        path=str(path), kind=kind, elf_class=elf.elfclass,
        endian="little" if elf.little_endian else "big", machine=str(header["e_machine"]), osabi=str(osabi),
        abi_note=_text(abi_note), os=os_name, build_id=build_id, interpreter=_text(interp),
        soname=_text(soname), needed=tuple(_text(n) for n in needed),
        # Only a program or library without a dynamic section is statically linked;
        # objects and debug files simply have no imports to see.
        static=dynamic is None and kind in ("executable", "pie executable", "shared library"),
        imports=imports, defines=defines,
    )


def _text(value) -> str | None:
    """A printable str for a header string (corrupt files yield bytes or odd types)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="backslashreplace")
    return str(value)


class _Sections:
    """One pass over the section headers: pyelftools builds a new object per visit, and a
    library has dozens of sections, so walking them once per question cost most of a scan."""

    def __init__(self, elf: ELFFile):
        self.all = list(elf.iter_sections())
        self.by_name = {}
        for section in self.all:
            self.by_name.setdefault(section.name, section)

    def first(self, cls):
        for section in self.all:
            if isinstance(section, cls):
                return section
        return None


def _kind(e_type: str, interp: str | None, soname: str | None) -> str:
    if e_type == "ET_EXEC":
        return "executable"
    if e_type == "ET_DYN":
        # A PIE executable is ET_DYN with an interpreter; a library has a DT_SONAME (glibc's
        # libc.so.6 has both: it runs as a program too, but it is a library first).
        return "pie executable" if interp and not soname else "shared library"
    if e_type == "ET_REL":
        return "object"
    if e_type == "ET_CORE":
        return "core"
    return str(e_type)


def _interpreter(elf: ELFFile) -> str | None:
    for seg in elf.iter_segments():
        if seg["p_type"] == "PT_INTERP":
            return seg.get_interp_name()
    return None


def _dynamic_entries(dynamic) -> tuple[list[str], str | None]:
    if dynamic is None:
        return [], None
    needed, soname = [], None
    for tag in dynamic.iter_tags():
        if tag.entry.d_tag == "DT_NEEDED":
            needed.append(tag.needed)
        elif tag.entry.d_tag == "DT_SONAME":
            soname = tag.soname
    return needed, soname


def _notes(elf: ELFFile, sections: _Sections) -> tuple[str | None, str | None, str | None]:
    abi_note = note_os = build_id = None
    for section in sections.all:
        if not isinstance(section, NoteSection):
            continue
        for note in section.iter_notes():
            name, ntype, desc = note["n_name"], note["n_type"], note["n_desc"]
            if ntype == "NT_GNU_BUILD_ID" and name == "GNU":  # SystemTap (stapsdt) notes reuse type 3
                # pyelftools gives hex text; a malformed note comes back as raw bytes
                build_id = desc.hex() if isinstance(desc, (bytes, bytearray)) else _text(desc)
            elif ntype == "NT_GNU_ABI_TAG" and name == "GNU" and hasattr(desc, "get"):
                note_os = _GNU_ABI_OS.get(desc.get("abi_os"), note_os)
                abi_note = "GNU/{} {}.{}.{}".format(
                    str(desc.get("abi_os", "?")).removeprefix("ELF_NOTE_OS_").capitalize(),
                    desc.get("abi_major"), desc.get("abi_minor"), desc.get("abi_tiny"))
            elif name in _NOTE_OS and ntype in (1, "NT_GNU_ABI_TAG"):
                # NT_FREEBSD_ABI_TAG / NT_NETBSD_IDENT / OpenBSD's ident: type 1, desc = version word
                note_os = _NOTE_OS[name]
                abi_note = f"{name} {_desc_word(desc, elf.little_endian)}"
    return abi_note, note_os, build_id


def _desc_word(desc, little: bool):
    if isinstance(desc, (bytes, bytearray)) and len(desc) >= 4:
        return struct.unpack("<I" if little else ">I", bytes(desc[:4]))[0]
    if isinstance(desc, str):
        try:
            raw = desc.encode("latin-1")
            if len(raw) >= 4:
                return struct.unpack("<I" if little else ">I", raw[:4])[0]
        except (UnicodeEncodeError, struct.error):
            pass
    return desc


def _wanted_symbols(elf: ELFFile, sections: _Sections, functions) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Imported and defined symbols among ``functions``, each as ``name@version``.

    pyelftools parses each symbol through `construct` (about 0.2 ms a symbol here), which made
    symbol reading most of a scan; the symbol table is a flat array of fixed-size records, so
    it is unpacked here with struct.iter_unpack straight from the section's bytes (layouts
    from the gABI: Elf32_Sym and Elf64_Sym). pyelftools still finds the sections.
    """
    dynsym = sections.by_name.get(".dynsym")
    if not isinstance(dynsym, SymbolTableSection) or dynsym["sh_type"] == "SHT_NOBITS":
        return (), ()
    strtab = dynsym.stringtable.data()
    endian = "<" if elf.little_endian else ">"
    if elf.elfclass == 64:
        layout, name_i, info_i, shndx_i = endian + "IBBHQQ", 0, 1, 3
    else:
        layout, name_i, info_i, shndx_i = endian + "IIIBBH", 0, 3, 5
    data = dynsym.data()
    size = struct.calcsize(layout)
    data = data[: len(data) - len(data) % size]
    versym = sections.first(GNUVerSymSection)
    versions = None
    if versym is not None and versym["sh_type"] != "SHT_NOBITS":
        raw = versym.data()
        versions = [v[0] for v in struct.iter_unpack(endian + "H", raw[: len(raw) - len(raw) % 2])]
    need_names = _verneed_names(sections)
    def_names = _verdef_names(sections)
    wanted = {f.encode() for f in functions}

    imports, defines = [], []
    for index, sym in enumerate(struct.iter_unpack(layout, data)):
        offset = sym[name_i]
        if offset == 0 or offset >= len(strtab):
            continue
        stop = strtab.find(b"\0", offset)
        name = strtab[offset: stop if stop >= 0 else len(strtab)]
        if name not in wanted:
            continue
        text = name.decode()
        defined = sym[shndx_i] != 0                      # SHN_UNDEF
        version = ""
        if versions is not None and index < len(versions):
            ndx = versions[index] & 0x7FFF               # the hidden bit
            if ndx > 1:                                  # 0 local, 1 global: no version name
                vname = (def_names if defined else need_names).get(ndx) or need_names.get(ndx) or def_names.get(ndx)
                version = f"@{vname}" if vname else ""
        if not defined:
            imports.append(text + version)
        elif sym[info_i] & 0xF in (2, 10):               # STT_FUNC, STT_GNU_IFUNC
            defines.append(text + version)
    return tuple(sorted(set(imports))), tuple(sorted(set(defines)))


def _verneed_names(sections: _Sections) -> dict[int, str]:
    section = sections.first(GNUVerNeedSection)
    names: dict[int, str] = {}
    if section is None:
        return names
    for _verneed, auxes in section.iter_versions():
        for aux in auxes:
            names[aux["vna_other"]] = aux.name
    return names


def _verdef_names(sections: _Sections) -> dict[int, str]:
    section = sections.first(GNUVerDefSection)
    names: dict[int, str] = {}
    if section is None:
        return names
    for verdef, auxes in section.iter_versions():
        for aux in auxes:
            names[verdef["vd_ndx"]] = aux.name
            break
    return names


ELF_ERRORS = (ELFError, struct.error, ValueError, IndexError, KeyError, TypeError, AttributeError,
              AssertionError, UnicodeDecodeError, OverflowError, RecursionError, MemoryError, EOFError)
