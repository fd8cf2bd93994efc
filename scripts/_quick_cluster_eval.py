import json, sys, time
from datetime import datetime, timedelta
sys.path.insert(0,'/work/main')
from aggregator.cluster import Clusterer, ClusterSettings
from aggregator.parse import parse_time
import importlib.util
spec=importlib.util.spec_from_file_location('score','/work/shared/bench/score.py'); score=importlib.util.module_from_spec(spec); spec.loader.exec_module(score)
def run(path, **kw):
    rows=[json.loads(l) for l in open(path)]
    base=datetime(2026,1,1)
    for i,r in enumerate(rows): r['_t']=parse_time(r['published']) or base
    rows.sort(key=lambda r:r['_t'])
    c=Clusterer(ClusterSettings(**kw))
    pred={}; nxt=0; t0=time.perf_counter()
    for i,r in enumerate(rows):
        f=c.features(r['title'], r['text'] or '', r['_t'], r['source'] or '')
        d=c.decide(f)
        sid=d.story_id
        if sid is None: nxt+=1; sid=nxt
        for m in d.merge_story_ids: 
            c.merge(sid,m)
            for k,v in pred.items():
                if v==m: pred[k]=sid
        c.add(i,f,sid); pred[r['id']]=sid
    dt=time.perf_counter()-t0
    gold={r['id']:str(r['story']) for r in rows}
    s=score.scores(gold,{k:str(v) for k,v in pred.items()})
    print(path.split('/')[-1], kw, {k:round(v,4) if isinstance(v,float) else v for k,v in s.items()}, f"{len(rows)/dt:.0f}/s")
if __name__=='__main__':
    kw={}
    for a in sys.argv[2:]:
        k,v=a.split('='); kw[k]=float(v) if '.' in v else int(v)
    run(sys.argv[1], **kw)
