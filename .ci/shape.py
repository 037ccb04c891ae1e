#!/usr/bin/env python3
"""The code's shape, as issue 18 measures it: per crate (agent, collector, common, parsers), files over
600 lines and functions over 100 lines outside tests, and import circles between files
(strongly connected components of `crate::`/`super::` references, doc comments
included). A rough count: braces are counted by text. Not run by CI.

Usage: .ci/shape.py [workspace root, default .]
"""
import os,re,sys,collections
root=sys.argv[1] if len(sys.argv) > 1 else '.'
def files(crate):
    out=[]
    for d,_,fs in os.walk(os.path.join(root,crate,'src')):
        for f in fs:
            if f.endswith('.rs'): out.append(os.path.join(d,f))
    return sorted(out)
def code(line):
    # Braces inside string and char literals and comments do not count.
    line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
    line = re.sub(r"'(\\.|[^'\\])'", "''", line)
    return line.split('//')[0]
def strip_tests(text):
    # remove #[cfg(test)] mod tests { ... } blocks
    lines=text.split('\n'); out=[]; i=0
    while i<len(lines):
        if lines[i].strip()=='#[cfg(test)]' and i+1<len(lines) and re.match(r'\s*(pub )?mod \w+ \{',lines[i+1]):
            depth=0; j=i+1
            while j<len(lines):
                c=code(lines[j]); depth+=c.count('{')-c.count('}')
                if depth<=0 and j>i+1: break
                j+=1
            i=j+1; continue
        out.append(lines[i]); i+=1
    return out
def modpath(crate,path):
    rel=os.path.relpath(path,os.path.join(root,crate,'src'))[:-3]
    parts=rel.split('/')
    if parts[-1] in ('mod','lib','main'): parts=parts[:-1]
    return '::'.join(parts)
for crate in ['agent', 'collector', 'common', 'parsers']:
    big=[]; longfns=[]; edges=collections.defaultdict(set); mods={}
    for p in files(crate):
        if p.endswith('tests.rs') or '/tests/' in p: continue
        lines=strip_tests(open(p).read())
        m=modpath(crate,p); mods[m]=p
        n=len(lines)
        if n>600: big.append((n,os.path.relpath(p,root)))
        # functions
        for i,l in enumerate(lines):
            mm=re.match(r'(\s*)(pub(\([^)]*\))? )?(async )?(const )?(unsafe )?fn (\w+)',l)
            if mm and not l.rstrip().endswith(';'):
                ind=len(mm.group(1)); depth=0; started=False
                for j in range(i,len(lines)):
                    c=code(lines[j])
                    depth+=c.count('{')-c.count('}')
                    if '{' in c: started=True
                    if started and depth<=0: break
                if j-i+1>100: longfns.append((j-i+1,os.path.relpath(p,root),mm.group(7)))
        text='\n'.join(lines)
        for u in re.findall(r'crate::(\w+(?:::\w+)*)',text):
            edges[m].add(u)
        for u in re.findall(r'super::(\w+)',text):
            base=m.rsplit('::',1)[0] if '::' in m else ''
            edges[m].add((base+'::' if base else '')+u)
    # resolve edges to known module files (longest prefix)
    graph=collections.defaultdict(set)
    for a,targets in edges.items():
        for t in targets:
            parts=t.split('::')
            for k in range(len(parts),0,-1):
                cand='::'.join(parts[:k])
                if cand in mods and cand!=a:
                    graph[a].add(cand); break
    # tarjan SCC
    index={}; low={}; st=[]; on=set(); sccs=[]; c=[0]
    def sc(v):
        index[v]=low[v]=c[0]; c[0]+=1; st.append(v); on.add(v)
        for w in graph[v]:
            if w not in index: sc(w); low[v]=min(low[v],low[w])
            elif w in on: low[v]=min(low[v],index[w])
        if low[v]==index[v]:
            comp=[]
            while True:
                w=st.pop(); on.discard(w); comp.append(w)
                if w==v: break
            if len(comp)>1: sccs.append(sorted(comp))
    sys.setrecursionlimit(10000)
    for v in list(mods): 
        if v not in index: sc(v)
    print(f'== {crate}: {len(mods)} files')
    print(' files over 600 lines (tests excluded):', sorted(big,reverse=True))
    print(' functions over 100 lines:', sorted(longfns,reverse=True))
    print(' import circles (files in one cycle):', sccs)
