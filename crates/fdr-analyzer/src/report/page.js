(function(){
  var errs = document.getElementById('fdr-errors');
  window.onerror = function(msg, src, line){ errs.textContent += 'error: ' + msg + ' (line ' + line + ')\n'; return false; };
  var data = JSON.parse(document.getElementById('fdr-data').textContent);
  var svgNS = 'http://www.w3.org/2000/svg';
  var colors = {poll:'#4a90d9', region:'#7cb342', block:'#e53935', park:'#cfd8dc', user_task:'#ffb74d', task:'#b39ddb', async_region:'#26a69a'};
  var sevColors = {critical:'#d33', warning:'#e90', info:'#39c'};
  var kinds = data.kinds, labels = data.labels, dur = Math.max(1, data.duration_ns);
  var left = 220, right = 12, top = 34, rowH = 13, counterH = 34;
  var box = document.getElementById('timeline');
  var W = Math.max(600, (box.clientWidth || 1300));
  var plotW = W - left - right;
  // Lanes: their slices sorted by start, the longest slice (to find those that began
  // before the view), the rows they need.
  var lanes = data.lanes.map(function(l){ return {name:l.name, kind:l.kind, why:l.why, slices:[], maxDur:0, rows:1}; });
  data.slices.forEach(function(s, i){
    var l = lanes[s[0]];
    l.slices.push(i);
    if (s[4] > l.maxDur) l.maxDur = s[4];
    if (s[2] + 1 > l.rows) l.rows = Math.min(s[2] + 1, 8);
  });
  var y = top;
  data.counters.forEach(function(c){ c.y = y; y += counterH; });
  lanes.forEach(function(l){ l.y = y; l.h = l.rows * rowH + 4; y += l.h; });
  var H = y + 8;
  var view = data.view.slice();
  var m = /view=(\d+),(\d+)/.exec(location.hash);
  if (m && +m[2] > +m[1]) view = [+m[1], +m[2]];
  function fmt(ns){ ns = Math.max(0, ns); if (ns < 1e3) return Math.round(ns) + 'ns'; if (ns < 1e6) return (ns / 1e3).toFixed(1) + 'us'; if (ns < 1e9) return (ns / 1e6).toFixed(2) + 'ms'; return (ns / 1e9).toFixed(2) + 's'; }
  function wall(ns){
    if (data.origin_wall_ms == null) return '';
    var d = new Date(data.origin_wall_ms + ns / 1e6);
    return d.toISOString().replace('T', ' ').replace('Z', '') + ' UTC';
  }
  function val(c, v){
    if (c.unit == 's') return fmt(v * 1e9) + (c.name.indexOf('per second') >= 0 ? '/s' : '');
    if (c.unit == 'ns') return fmt(v);
    if (Math.abs(v) >= 100 || v == Math.round(v)) return Math.round(v).toString();
    return v.toFixed(3);
  }
  function el(name, attrs, text){ var e = document.createElementNS(svgNS, name); for (var k in attrs) e.setAttribute(k, attrs[k]); if (text != null) e.textContent = text; return e; }
  var svg = el('svg', {width: W, height: H});
  box.appendChild(svg);
  var detail = document.getElementById('detail');
  function x(ns){ return left + (ns - view[0]) * plotW / (view[1] - view[0]); }
  function draw(){
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var span = view[1] - view[0], scale = plotW / span;
    // Axis: ten ticks, relative time and the wall clock.
    for (var t = 0; t <= 10; t++) {
      var ns = view[0] + span * t / 10, tx = left + plotW * t / 10;
      svg.appendChild(el('line', {x1:tx, x2:tx, y1:top - 6, y2:H, stroke:'#eee'}));
      if (t < 10) {
        svg.appendChild(el('text', {x:tx + 2, y:12, 'font-size':10, fill:'#444'}, '+' + fmt(ns)));
        var w = wall(ns);
        if (w && t % 2 == 0) svg.appendChild(el('text', {x:tx + 2, y:24, 'font-size':9, fill:'#888'}, w.slice(11)));
      }
    }
    // Counter lanes.
    data.counters.forEach(function(c){
      svg.appendChild(el('rect', {x:0, y:c.y, width:W, height:counterH, fill:'#f7f9fc'}));
      svg.appendChild(el('text', {x:4, y:c.y + 13, 'font-size':10, fill:'#333'}, c.name.slice(0, 40)));
      var pts = c.points, lo = Infinity, hi = -Infinity;
      pts.forEach(function(p){ if (p[1] < lo) lo = p[1]; if (p[1] > hi) hi = p[1]; });
      if (!pts.length) return;
      if (hi == lo) hi = lo + 1;
      var path = [], prev = null;
      pts.forEach(function(p){
        var px = Math.max(left - 1, Math.min(W - right + 1, x(p[0])));
        var py = c.y + counterH - 4 - (p[1] - lo) * (counterH - 10) / (hi - lo);
        if (prev != null) path.push(px.toFixed(1) + ',' + prev.toFixed(1));
        path.push(px.toFixed(1) + ',' + py.toFixed(1));
        prev = py;
      });
      svg.appendChild(el('polyline', {points: path.join(' '), fill:'none', stroke:'#5c6bc0', 'stroke-width':1.2, 'class':'counter'}));
      svg.appendChild(el('text', {x:4, y:c.y + 26, 'font-size':9, fill:'#777'}, val(c, lo) + ' .. ' + val(c, hi)));
    });
    // Slice lanes.
    var drawn = 0;
    lanes.forEach(function(l, li){
      svg.appendChild(el('rect', {x:0, y:l.y, width:W, height:l.h, fill: li % 2 ? '#fbfbfb' : '#f3f3f3'}));
      var name = el('text', {x:4, y:l.y + 12, 'font-size':11, fill: l.kind == 'thread' ? '#222' : '#555'}, l.name.slice(0, 34));
      name.appendChild(el('title', {}, l.name + '\n' + l.why));
      svg.appendChild(name);
      // First slice that may reach into the view: starts after view[0] - the longest.
      var from = view[0] - l.maxDur, lo = 0, hi = l.slices.length;
      while (lo < hi) { var mid = (lo + hi) >> 1; if (data.slices[l.slices[mid]][3] < from) lo = mid + 1; else hi = mid; }
      var agg = {};
      for (var i = lo; i < l.slices.length; i++) {
        var s = data.slices[l.slices[i]];
        if (s[3] > view[1]) break;
        var end = s[3] + s[4];
        if (end < view[0]) continue;
        var x0 = Math.max(left, x(s[3])), x1 = Math.min(W - right, x(end));
        var row = Math.min(s[2], l.rows - 1), sy = l.y + 2 + row * rowH;
        if (x1 - x0 >= 1) {
          var r = el('rect', {x:x0.toFixed(1), y:sy, width:(x1 - x0).toFixed(1), height:rowH - 2, fill:colors[kinds[s[1]]] || '#999', 'class':'slice', 'data-i':l.slices[i]});
          r.appendChild(el('title', {}, sliceText(s)));
          svg.appendChild(r);
          drawn++;
        } else {
          // Narrower than a pixel: one mark per pixel column and row holds them all.
          var key = row + ':' + Math.floor(x0);
          var a = agg[key];
          if (!a) agg[key] = a = {x: Math.floor(x0), y: sy, n: 0, first: s, kind: s[1], t0: s[3], t1: end};
          a.n++; if (s[3] < a.t0) a.t0 = s[3]; if (end > a.t1) a.t1 = end;
          if (s[1] == 2) a.kind = 2;
        }
      }
      Object.keys(agg).forEach(function(k){
        var a = agg[k];
        var r = el('rect', {x:a.x, y:a.y, width:1, height:rowH - 2, fill:colors[kinds[a.kind]] || '#999', 'class':'agg', 'data-n':a.n, 'data-t0':a.t0, 'data-t1':a.t1});
        r.appendChild(el('title', {}, a.n == 1 ? sliceText(a.first) + ' (click to zoom in)' : a.n + ' slices within ' + fmt(a.t1 - a.t0) + ' at +' + fmt(a.t0) + ' (click to zoom in)'));
        svg.appendChild(r);
        drawn++;
      });
    });
    // The findings' windows and the trigger, over every lane.
    data.windows.forEach(function(w){
      var a = Math.max(left, x(w.start_ns)), b = Math.min(W - right, x(w.end_ns));
      var vis = b >= left && a <= W - right;
      var wx = Math.min(a, W - right), ww = Math.max(2, b - a);
      var r = el('rect', {x:wx.toFixed(1), y:top - 6, width:vis ? ww.toFixed(1) : 0, height:H - top + 6, fill:sevColors[w.severity] || '#999', 'fill-opacity':0.13, stroke:sevColors[w.severity] || '#999', 'stroke-width':1, 'class':'fwin', 'data-rule':w.rule, 'data-rank':w.rank, 'data-start-ns':w.start_ns, 'data-end-ns':w.end_ns, 'data-visible': vis ? '1' : '0', 'pointer-events':'none'});
      svg.appendChild(r);
      if (vis) svg.appendChild(el('text', {x:wx + 3, y:top + 4, 'font-size':10, 'font-weight':'bold', fill:sevColors[w.severity] || '#999', 'class':'fwin-label'}, w.rank + '. ' + w.rule));
    });
    if (data.trigger) {
      var tx = x(data.trigger.at_ns);
      if (tx >= left && tx <= W - right) {
        svg.appendChild(el('line', {x1:tx, x2:tx, y1:top - 10, y2:H, stroke:'#d33', 'stroke-width':2, 'stroke-dasharray':'4,3', 'class':'trigger', 'data-at-ns':data.trigger.at_ns}));
        svg.appendChild(el('text', {x:tx + 3, y:top - 1, 'font-size':10, fill:'#d33'}, 'trigger: ' + data.trigger.text));
      }
    }
    var info = document.getElementById('viewinfo');
    info.textContent = 'showing +' + fmt(view[0]) + ' .. +' + fmt(view[1]) + ' (' + fmt(span) + ') ' + wall(view[0]);
    svg.setAttribute('data-view', view[0] + ',' + view[1]);
    svg.setAttribute('data-drawn', drawn);
    if (history.replaceState) history.replaceState(null, '', '#view=' + Math.round(view[0]) + ',' + Math.round(view[1]));
  }
  function sliceText(s){
    return kinds[s[1]] + ' ' + labels[s[5]] + '\n' + fmt(s[4]) + ' from +' + fmt(s[3]) + (data.origin_wall_ms != null ? ' (' + wall(s[3]) + ')' : '') + (s[6] ? '\ncut short: its end is not in the trace' : '');
  }
  function setView(a, b){
    var minSpan = 1000;
    if (b - a < minSpan) { var c = (a + b) / 2; a = c - minSpan / 2; b = c + minSpan / 2; }
    if (b - a > dur) { a = 0; b = dur; }
    if (a < 0) { b -= a; a = 0; }
    if (b > dur) { a -= b - dur; b = dur; }
    view = [Math.max(0, a), b];
    draw();
  }
  function zoom(f, at){
    var c = at == null ? (view[0] + view[1]) / 2 : at;
    setView(c - (c - view[0]) * f, c + (view[1] - c) * f);
  }
  function nsAt(px){ return view[0] + (px - left) * (view[1] - view[0]) / plotW; }
  box.addEventListener('wheel', function(e){
    e.preventDefault();
    var rect = svg.getBoundingClientRect();
    zoom(e.deltaY > 0 ? 1.25 : 0.8, nsAt(e.clientX - rect.left));
  }, {passive:false});
  var drag = null;
  box.addEventListener('mousedown', function(e){ drag = {x:e.clientX, v:view.slice(), moved:false}; });
  window.addEventListener('mousemove', function(e){
    if (!drag) return;
    var dx = e.clientX - drag.x;
    if (Math.abs(dx) > 2) drag.moved = true;
    var d = dx * (drag.v[1] - drag.v[0]) / plotW;
    setView(drag.v[0] - d, drag.v[1] - d);
  });
  window.addEventListener('mouseup', function(e){
    var d = drag; drag = null;
    if (!d || d.moved) return;
    var t = e.target;
    if (t && t.getAttribute && t.getAttribute('class') == 'agg') {
      var t0 = +t.getAttribute('data-t0'), t1 = +t.getAttribute('data-t1');
      var pad = Math.max(t1 - t0, 1000);
      setView(t0 - pad, t1 + pad);
    }
  });
  svg.addEventListener('mousemove', function(e){
    var t = e.target, i = t.getAttribute && t.getAttribute('data-i');
    if (i != null) detail.textContent = sliceText(data.slices[+i]).replace(/\n/g, '; ');
    else if (t.getAttribute && t.getAttribute('class') == 'agg') detail.textContent = t.firstChild.textContent;
  });
  document.addEventListener('keydown', function(e){
    var k = e.key.toLowerCase(), s = view[1] - view[0];
    if (k == 'w') zoom(0.8); else if (k == 's') zoom(1.25);
    else if (k == 'a') setView(view[0] - s / 5, view[1] - s / 5);
    else if (k == 'd') setView(view[0] + s / 5, view[1] + s / 5);
  });
  function topWindow(){ setView(data.view[0], data.view[1]); }
  document.getElementById('zin').onclick = function(){ zoom(0.5); };
  document.getElementById('zout').onclick = function(){ zoom(2); };
  document.getElementById('zall').onclick = function(){ setView(0, dur); };
  document.getElementById('ztop').onclick = topWindow;
  Array.prototype.forEach.call(document.querySelectorAll('a.show'), function(a){
    a.onclick = function(e){
      e.preventDefault();
      var s = +a.getAttribute('data-start-ns'), t = +a.getAttribute('data-end-ns'), pad = Math.max(t - s, 1e6);
      setView(s - pad, t + pad);
      box.scrollIntoView();
    };
  });
  var legend = document.getElementById('legend');
  Object.keys(colors).forEach(function(k){ var s = document.createElement('span'); s.innerHTML = '<i style="background:' + colors[k] + '"></i>' + k.replace('_', ' '); legend.appendChild(s); });
  data.windows.forEach(function(w){ var s = document.createElement('span'); s.innerHTML = '<i style="background:' + (sevColors[w.severity] || '#999') + ';opacity:.35"></i>'; s.appendChild(document.createTextNode('finding ' + w.rank + ': ' + w.rule)); legend.appendChild(s); });
  setView(view[0], view[1]);
  var status = document.getElementById('fdr-status');
  status.textContent = 'drew ' + lanes.length + ' lanes, ' + data.counters.length + ' counters, ' + data.slices.length + ' slices in the page';
  status.setAttribute('data-ok', errs.textContent ? '0' : '1');
  status.setAttribute('data-lanes', lanes.length);
  document.title = 'fdr report: ' + lanes.length + ' lanes';
})();
