"""Pictures of a cohort map: a self-contained interactive HTML and publication-quality PNG/SVG.

The HTML needs no network: data, script and style are inside the file. Points are drawn
on a canvas; hovering shows the case (and its thumbnail when included), the legend toggles
groups, the wheel zooms and dragging pans. Categorical colourings (disorder, gene, sex,
source) use a fixed palette; numeric ones (age, bone-age deviation) a blue-red scale.
Static figures use matplotlib (Agg), optionally faceted, with the query and its nearest
cases highlighted.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd

from matcher.errors import Bone2GeneError

NUMERIC = {"age_months": "age (months)", "bone_age_deviation_months": "bone age - age (months)"}
CATEGORICAL = {"disorder": "disorder", "gene": "gene", "sex": "sex", "source": "source"}
PALETTE = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#393b79",
    "#637939",
    "#8c6d31",
    "#843c39",
    "#7b4173",
    "#3182bd",
    "#e6550d",
    "#31a354",
    "#756bb1",
    "#636363",
    "#6baed6",
    "#fd8d3c",
    "#74c476",
    "#9e9ac8",
    "#969696",
    "#c6dbef",
]


class FigureError(Bone2GeneError, ValueError):
    """A figure that cannot be drawn as asked."""


def _check_colour(colour_by: str) -> None:
    if colour_by not in NUMERIC and colour_by not in CATEGORICAL:
        raise FigureError(f"--colour must be one of {', '.join([*CATEGORICAL, *NUMERIC])}, not {colour_by!r}")


def _labels(table: pd.DataFrame) -> list[str]:
    return [
        f"{r.case_id} · {r.disorder_name if isinstance(r.disorder_name, str) else r.disorder} · {r.gene} · {r.sex} · "
        f"{r.age_months / 12:.1f} y" + ("" if pd.isna(r.bone_age_deviation_months) else f" · BA-CA {r.bone_age_deviation_months:+.0f} mo")
        for r in table.itertuples()
    ]


def write_html(
    table: pd.DataFrame,
    colour_by: str,
    out: Path,
    title: str,
    query: np.ndarray | None = None,
    neighbours: list[str] | None = None,
    thumbnails: dict[str, str] | None = None,
) -> Path:
    """Interactive, offline HTML. `thumbnails`: case_id -> base64 PNG (only where allowed)."""
    _check_colour(colour_by)
    points = {
        "x": table["x"].round(4).tolist(),
        "y": table["y"].round(4).tolist(),
        "label": _labels(table),
        "case": table["case_id"].tolist(),
        "group": table[colour_by].astype(str).tolist() if colour_by in CATEGORICAL else None,
        "value": None if colour_by in CATEGORICAL else table[colour_by].fillna(0).round(2).tolist(),
    }
    payload = {
        "points": points,
        "numeric": colour_by in NUMERIC,
        "colourName": NUMERIC.get(colour_by, CATEGORICAL.get(colour_by)),
        "palette": PALETTE,
        "query": None if query is None else [round(float(query[0]), 4), round(float(query[1]), 4)],
        "neighbours": neighbours or [],
        "thumbs": thumbnails or {},
    }
    document = _HTML.replace("__TITLE__", html.escape(title)).replace("__DATA__", json.dumps(payload).replace("</", "<\\/"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(document, encoding="utf-8")
    return out


def write_static(
    table: pd.DataFrame,
    colour_by: str,
    out: Path,
    title: str,
    query: np.ndarray | None = None,
    neighbours: list[str] | None = None,
    facet_by: str | None = None,
) -> Path:
    """PNG (300 dpi) or SVG, by the file's suffix; one panel per `facet_by` value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _check_colour(colour_by)
    if out.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise FigureError(f"static figures are .png, .svg or .pdf, not {out.suffix!r}")
    if facet_by is not None and facet_by not in CATEGORICAL:
        raise FigureError(f"--facet must be one of {', '.join(CATEGORICAL)}")
    facets = [(None, table)] if facet_by is None else list(table.groupby(facet_by))
    fig, axes = plt.subplots(1, len(facets), figsize=(6.2 * len(facets) + 2.6, 6), squeeze=False)
    groups = sorted(table[colour_by].astype(str).unique()) if colour_by in CATEGORICAL else []
    colours = {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(groups)}
    for ax, (facet, part) in zip(axes[0], facets, strict=True):
        if colour_by in CATEGORICAL:
            for group in groups:
                sel = part[part[colour_by].astype(str) == group]
                if len(sel):
                    ax.scatter(sel["x"], sel["y"], s=14, c=colours[group], label=group, linewidths=0, alpha=0.85)
        else:
            values = part[colour_by].astype(float)
            limit = float(np.nanmax(np.abs(table[colour_by].astype(float)))) or 1.0
            norm = (
                (-limit, limit)
                if colour_by == "bone_age_deviation_months"
                else (float(table[colour_by].min()), float(table[colour_by].max()))
            )
            scatter = ax.scatter(part["x"], part["y"], s=14, c=values, cmap="coolwarm", vmin=norm[0], vmax=norm[1], linewidths=0)
            fig.colorbar(scatter, ax=ax, label=NUMERIC[colour_by], shrink=0.8)
        if neighbours:
            near = part[part["case_id"].isin(neighbours)]
            ax.scatter(near["x"], near["y"], s=70, facecolors="none", edgecolors="black", linewidths=1.2, label="nearest cases")
        if query is not None:
            ax.scatter([query[0]], [query[1]], s=260, marker="*", c="gold", edgecolors="black", linewidths=1.0, label="query", zorder=5)
        ax.set_title(title if facet is None else f"{facet_by}: {facet}", fontsize=11)
        ax.set_xlabel("UMAP 1")
        ax.set_ylabel("UMAP 2")
        ax.set_xticks([])
        ax.set_yticks([])
    if colour_by in CATEGORICAL or neighbours or query is not None:
        handles, names = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, names, loc="center right", fontsize=8, frameon=False, markerscale=1.3)
    fig.tight_layout(rect=(0, 0, 0.8 if colour_by in CATEGORICAL else 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=300 if out.suffix.lower() == ".png" else None)
    plt.close(fig)
    return out


_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body{font-family:system-ui,sans-serif;margin:0;display:flex;height:100vh;color:#1d2733}
#plot{flex:1;position:relative}canvas{width:100%;height:100%;display:block;cursor:grab}
#side{width:300px;overflow:auto;padding:10px;border-left:1px solid #ddd;font-size:13px}
#tip{position:absolute;pointer-events:none;background:#fff;border:1px solid #999;padding:4px 6px;font-size:12px;display:none;max-width:320px}
#tip img{display:block;max-width:180px;margin-top:4px;background:#000}
.item{cursor:pointer;user-select:none;margin:2px 0}.item.off{opacity:.35}.sw{display:inline-block;width:11px;height:11px;margin-right:6px;border-radius:50%}
h1{font-size:15px;margin:4px 0 8px}
</style></head><body>
<div id="plot"><canvas id="c"></canvas><div id="tip"></div></div>
<div id="side"><h1>__TITLE__</h1><p>Wheel: zoom · drag: pan · double-click: reset · click a legend entry to hide it.</p><div id="legend"></div></div>
<script>
const D=__DATA__;const P=D.points;const n=P.x.length;
const cv=document.getElementById('c'),ctx=cv.getContext('2d'),tip=document.getElementById('tip');
const groups=D.numeric?[]:[...new Set(P.group)].sort();const colourOf={};groups.forEach((g,i)=>colourOf[g]=D.palette[i%D.palette.length]);
const hidden=new Set();let view;
function extent(){const xs=P.x.concat(D.query?[D.query[0]]:[]),ys=P.y.concat(D.query?[D.query[1]]:[]);
 const x0=Math.min(...xs),x1=Math.max(...xs),y0=Math.min(...ys),y1=Math.max(...ys),px=(x1-x0)*.05||1,py=(y1-y0)*.05||1;return{x0:x0-px,x1:x1+px,y0:y0-py,y1:y1+py};}
function reset(){view=extent();draw();}
function sx(x){return (x-view.x0)/(view.x1-view.x0)*cv.width;}function sy(y){return cv.height-(y-view.y0)/(view.y1-view.y0)*cv.height;}
const vmin=D.numeric?Math.min(...P.value):0,vmax=D.numeric?Math.max(...P.value):1;
function ramp(v){const t=(v-vmin)/((vmax-vmin)||1);const r=Math.round(59+t*(180-59)),g=Math.round(76+(t<.5?t*2*(221-76):(1-t)*2*(221-76))),b=Math.round(192-t*(192-38));return `rgb(${r},${g},${b})`;}
function colour(i){return D.numeric?ramp(P.value[i]):colourOf[P.group[i]];}
function draw(){cv.width=cv.clientWidth*devicePixelRatio;cv.height=cv.clientHeight*devicePixelRatio;ctx.clearRect(0,0,cv.width,cv.height);
 const r=3.2*devicePixelRatio;for(let i=0;i<n;i++){if(!D.numeric&&hidden.has(P.group[i]))continue;ctx.fillStyle=colour(i);ctx.beginPath();ctx.arc(sx(P.x[i]),sy(P.y[i]),r,0,7);ctx.fill();}
 const near=new Set(D.neighbours);ctx.strokeStyle='#000';ctx.lineWidth=1.5*devicePixelRatio;
 for(let i=0;i<n;i++){if(near.has(P.case[i])){ctx.beginPath();ctx.arc(sx(P.x[i]),sy(P.y[i]),r*2.2,0,7);ctx.stroke();}}
 if(D.query){ctx.fillStyle='gold';ctx.beginPath();const qx=sx(D.query[0]),qy=sy(D.query[1]),s=9*devicePixelRatio;
  for(let k=0;k<10;k++){const a=Math.PI/5*k-Math.PI/2,rr=k%2?s*.45:s;ctx.lineTo(qx+rr*Math.cos(a),qy+rr*Math.sin(a));}ctx.closePath();ctx.fill();ctx.stroke();}}
function legend(){const el=document.getElementById('legend');
 if(D.numeric){el.innerHTML=`<p>${D.colourName}: <span style="color:${ramp(vmin)}">■</span> ${vmin.toFixed(0)} … <span style="color:${ramp(vmax)}">■</span> ${vmax.toFixed(0)}</p>`;}
 else{el.innerHTML='<p><b>'+D.colourName+'</b></p>';groups.forEach(g=>{const d=document.createElement('div');d.className='item';d.dataset.group=g;
  const c=P.group.filter(x=>x===g).length;d.innerHTML=`<span class="sw" style="background:${colourOf[g]}"></span>`;d.appendChild(document.createTextNode(`${g} (${c})`));
  d.onclick=()=>{hidden.has(g)?hidden.delete(g):hidden.add(g);d.classList.toggle('off');draw();};el.appendChild(d);});}
 if(D.query){const q=document.createElement('p');q.textContent='★ query'+(D.neighbours.length?' · ○ its nearest cases':'');el.appendChild(q);}}
let drag=null;cv.onmousedown=e=>{drag={x:e.clientX,y:e.clientY,v:{...view}};};window.onmouseup=()=>{drag=null;};
cv.onmousemove=e=>{const rect=cv.getBoundingClientRect();if(drag){const dx=(e.clientX-drag.x)/rect.width*(drag.v.x1-drag.v.x0),dy=(e.clientY-drag.y)/rect.height*(drag.v.y1-drag.v.y0);
  view={x0:drag.v.x0-dx,x1:drag.v.x1-dx,y0:drag.v.y0+dy,y1:drag.v.y1+dy};draw();return;}
 const mx=(e.clientX-rect.left)*devicePixelRatio,my=(e.clientY-rect.top)*devicePixelRatio;let best=-1,bd=64*devicePixelRatio;
 for(let i=0;i<n;i++){if(!D.numeric&&hidden.has(P.group[i]))continue;const d=Math.hypot(sx(P.x[i])-mx,sy(P.y[i])-my);if(d<bd){bd=d;best=i;}}
 if(best<0){tip.style.display='none';return;}tip.textContent=P.label[best];const t=D.thumbs[P.case[best]];
 if(t){const im=document.createElement('img');im.src='data:image/png;base64,'+t;tip.appendChild(im);}
 tip.style.left=(e.clientX-rect.left+12)+'px';tip.style.top=(e.clientY-rect.top+12)+'px';tip.style.display='block';};
cv.onwheel=e=>{e.preventDefault();const rect=cv.getBoundingClientRect(),f=e.deltaY>0?1.15:1/1.15;
 const cx=view.x0+(e.clientX-rect.left)/rect.width*(view.x1-view.x0),cy=view.y1-(e.clientY-rect.top)/rect.height*(view.y1-view.y0);
 view={x0:cx-(cx-view.x0)*f,x1:cx+(view.x1-cx)*f,y0:cy-(cy-view.y0)*f,y1:cy+(view.y1-cy)*f};draw();};
cv.ondblclick=reset;window.onresize=draw;legend();reset();
</script></body></html>
"""
