#!/usr/bin/env python3
"""check_include_cycles.py - the gateway's parts must depend on each other one
way. Scans every #include "..." in gateway/<part>/ (C sources and headers),
resolves each header to the part whose folder holds it (the including file's
own folder first, as the compiler does), builds the part-level graph and
fails naming the cycle when parts include each other in a circle, directly
or through others. Headers from outside gateway/ (common, drivers, rules) are
not parts and are left out. Also fails when a part includes another part's
header other than that part's one public header (PUBLIC_HEADER below; the
programs daemon/ and ctl/ have none). Prints the graph when all is well.

Usage: check_include_cycles.py [GATEWAY_DIR]   (default: ../../gateway)
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.MULTILINE)
SOURCE_SUFFIXES = ('.c', '.h')
# The one header through which each library part is used by the others.
PUBLIC_HEADER = {
    'config': 'config.h',
    'store': 'store.h',
    'views': 'views.h',
    'office': 'office.h',
    'notify': 'notify.h',
    'console': 'console.h',
    'pipeline': 'core.h',
}


def part_files(gateway):
    """{part: [paths of its C files]} for every folder directly under gateway."""
    parts = {}
    for part in sorted(os.listdir(gateway)):
        folder = os.path.join(gateway, part)
        if not os.path.isdir(folder):
            continue
        files = []
        for root, _dirs, names in os.walk(folder):
            files.extend(os.path.join(root, n) for n in sorted(names) if n.endswith(SOURCE_SUFFIXES))
        parts[part] = files
    return parts


def header_owners(parts):
    """{header base name: set of parts whose folder holds a header of that name}."""
    owners = {}
    for part, files in parts.items():
        for path in files:
            if path.endswith('.h'):
                owners.setdefault(os.path.basename(path), set()).add(part)
    return owners


def build_graph(gateway):
    """{part: {other part: [(file, header), ...]}}; raises ValueError when a
    header name is ambiguous."""
    parts = part_files(gateway)
    owners = header_owners(parts)
    graph = {part: {} for part in parts}
    for part, files in parts.items():
        for path in files:
            with open(path, encoding='utf-8', errors='replace') as f:
                text = f.read()
            local_dir = os.path.dirname(path)
            for header in INCLUDE.findall(text):
                if os.path.exists(os.path.join(local_dir, header)):
                    continue  # the part's own header
                found = owners.get(os.path.basename(header), set()) - {part}
                if not found:
                    continue  # not a gateway part (common, drivers, rules, system)
                if len(found) > 1:
                    raise ValueError('%s: "%s" is in more than one part: %s'
                                     % (os.path.relpath(path, gateway), header,
                                        ', '.join(sorted(found))))
                other = found.pop()
                graph[part].setdefault(other, []).append((os.path.relpath(path, gateway), header))
    return graph


def private_includes(graph):
    """[(file, header, part)] of includes of a part's header that is not its
    public one."""
    found = []
    for _part, others in sorted(graph.items()):
        for other, uses in sorted(others.items()):
            public = PUBLIC_HEADER.get(other)
            for path, header in uses:
                if os.path.basename(header) != public:
                    found.append((path, header, other))
    return found


def find_cycle(graph):
    """One cycle as a list of parts [a, b, ..., a], or None (depth-first)."""
    state = {}  # part -> 'open' while on the stack, 'done' after
    stack = []

    def visit(part):
        state[part] = 'open'
        stack.append(part)
        for other in sorted(graph[part]):
            if state.get(other) == 'open':
                return stack[stack.index(other):] + [other]
            if other not in state:
                cycle = visit(other)
                if cycle:
                    return cycle
        stack.pop()
        state[part] = 'done'
        return None

    for part in sorted(graph):
        if part not in state:
            cycle = visit(part)
            if cycle:
                return cycle
    return None


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    gateway = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, '..', '..', 'gateway')
    gateway = os.path.abspath(gateway)
    if not os.path.isdir(gateway):
        print('check_include_cycles: no folder %s' % gateway, file=sys.stderr)
        return 2
    try:
        graph = build_graph(gateway)
    except ValueError as e:
        print('check_include_cycles: %s' % e, file=sys.stderr)
        return 1
    if not any(graph.values()):
        print('check_include_cycles: no includes between parts found in %s' % gateway,
              file=sys.stderr)
        return 1
    cycle = find_cycle(graph)
    if cycle:
        print('include cycle between gateway parts: %s' % ' -> '.join(cycle))
        for a, b in zip(cycle, cycle[1:]):
            for path, header in graph[a][b]:
                print('  %s -> %s: %s includes "%s"' % (a, b, path, header))
        return 1
    private = private_includes(graph)
    if private:
        print('includes of a part\'s private header (use its public header instead):')
        for path, header, other in private:
            print('  %s includes "%s" of %s (public: "%s")'
                  % (path, header, other, PUBLIC_HEADER.get(other, 'none: a program')))
        return 1
    print('gateway parts, each with the parts it includes (no cycles, public headers only):')
    for part in sorted(graph):
        print('  %-10s -> %s' % (part, ', '.join(sorted(graph[part])) or '(none)'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
