/**
 * The back office's own stylesheet and script, served by the service (no CDN). The script is progressive
 * enhancement only: search as you type in the header box, and a running import's progress; every page works
 * without it.
 */

/** The stylesheet: readable on a tablet at the till, visible focus, high contrast. */
export const ADMIN_CSS = `
*{box-sizing:border-box}
body{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1a1a1a;background:#f6f7f9}
a{color:#0b57b7}
:focus-visible{outline:3px solid #f0a500;outline-offset:2px}
.skip{position:absolute;left:-999px}.skip:focus{left:8px;top:8px;background:#fff;padding:6px;z-index:9}
header{background:#123b6d;color:#fff;padding:8px 16px}
header a{color:#fff}
.bar{display:flex;flex-wrap:wrap;gap:12px;align-items:center;justify-content:space-between}
.brand{font-weight:700;text-decoration:none}
nav ul{display:flex;flex-wrap:wrap;gap:4px 16px;list-style:none;margin:0;padding:0}
nav a[aria-current=page]{font-weight:700;text-decoration:underline}
.tools{display:flex;gap:12px;align-items:center}
.who{font-size:.9em}
.search{margin-top:8px;position:relative;max-width:720px}
.search label{display:block;font-size:.9em}
.row{display:flex;gap:8px}.row input{flex:1}
.suggest{position:absolute;z-index:5;background:#fff;color:#1a1a1a;list-style:none;margin:0;padding:0;width:100%;box-shadow:0 4px 12px #0003}
.suggest:empty{display:none}.suggest li a{display:block;padding:6px 10px;color:#0b57b7}
main{padding:16px;max-width:1200px;margin:0 auto}
h1{font-size:1.5em;margin:.3em 0 .6em}h2{font-size:1.2em;margin:1.4em 0 .5em}
input,select,textarea,button{font:inherit;padding:6px 8px;border:1px solid #767676;border-radius:4px;min-height:40px}
button{background:#0b57b7;color:#fff;border-color:#0b57b7;cursor:pointer}
button.danger{background:#b3261e;border-color:#b3261e}
form.inline{display:inline}
.tools button{background:#fff;color:#123b6d}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:10px 16px;align-items:end}
.grid label{display:block;font-size:.9em;margin-bottom:2px}
.grid input,.grid select,.grid textarea{width:100%}
.grid input[type=checkbox]{width:24px;height:24px;min-height:0;vertical-align:middle}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:12px}
.card{background:#fff;border:1px solid #d0d4da;border-radius:8px;padding:12px}
.card .big{font-size:1.6em;font-weight:700}
section.panel{background:#fff;border:1px solid #d0d4da;border-radius:8px;padding:12px 16px;margin:12px 0}
.table{overflow-x:auto}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e1e4e8;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.notice{padding:8px 12px;border-radius:6px}.notice.error{background:#fde7e9;color:#8c1d18;border:1px solid #b3261e}
.notice.ok{background:#e6f4ea;color:#0d5223;border:1px solid #1e7e34}.notice.info{background:#eef3fb;border:1px solid #9bb5dd}
.secret{font-family:ui-monospace,monospace;font-size:1.1em;background:#fff8d6;padding:4px 8px;word-break:break-all}
svg text{font-size:11px;fill:#333}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
.login{max-width:420px;margin:40px auto;background:#fff;padding:20px;border-radius:8px;border:1px solid #d0d4da}
.login label{display:block;margin-top:10px}.login input{width:100%}.login button{margin-top:16px;width:100%}
@media (max-width:700px){main{padding:10px}.bar{flex-direction:column;align-items:flex-start}}
`;

/**
 * Search as you type: asks /admin/suggest for up to ten matches of the header box and lists them as links. A running
 * import's page polls its progress endpoint, moves the bar, and reloads once the run is over to show its report.
 */
export const ADMIN_JS = `
(function(){
  var box=document.getElementById("q"),list=document.getElementById("suggest");
  if(!box||!list||!window.fetch)return;
  var timer=null,seq=0;
  box.addEventListener("input",function(){
    clearTimeout(timer);
    var q=box.value.trim();
    if(q.length<2){list.textContent="";return;}
    timer=setTimeout(function(){
      var mine=++seq;
      fetch(box.dataset.suggest+"?q="+encodeURIComponent(q),{credentials:"same-origin"})
        .then(function(r){return r.ok?r.json():[]})
        .then(function(rows){
          if(mine!==seq)return;
          list.textContent="";
          rows.forEach(function(row){
            var li=document.createElement("li"),a=document.createElement("a");
            a.href=row.href;a.textContent=row.label;li.appendChild(a);list.appendChild(li);
          });
        }).catch(function(){});
    },250);
  });
  box.addEventListener("keydown",function(e){
    if(e.key==="Escape")list.textContent="";
    if(e.key==="ArrowDown"&&list.firstChild){e.preventDefault();list.firstChild.firstChild.focus();}
  });
})();
(function(){
  var box=document.querySelector("[data-progress]");
  if(!box||!window.fetch)return;
  var bar=document.getElementById("job-progress"),rows=document.getElementById("job-rows");
  function poll(){
    fetch(box.dataset.progress,{credentials:"same-origin"}).then(function(r){return r.ok?r.json():null})
      .then(function(p){
        if(!p)return;
        if(p.state!=="running"){location.reload();return;}
        var max=Math.max(p.total,p.rows,1);
        bar.max=max;bar.value=p.rows;rows.textContent=p.rows+" / "+Math.max(p.total,p.rows);
        setTimeout(poll,1000);
      }).catch(function(){setTimeout(poll,3000)});
  }
  setTimeout(poll,1000);
})();
`;
