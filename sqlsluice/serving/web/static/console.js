// Draws every <div class="plot" data-figure="ID"> from the JSON in <script id="ID"> (plotly.js,
// served from the plotly Python package: no CDN). Marks the body once all are drawn.
document.addEventListener("DOMContentLoaded", function () {
  var plots = document.querySelectorAll("div.plot[data-figure]");
  var pending = plots.length;
  plots.forEach(function (div) {
    var fig = JSON.parse(document.getElementById(div.dataset.figure).textContent);
    Plotly.newPlot(div, fig.data, fig.layout, {displaylogo: false, responsive: true, staticPlot: false})
      .then(function () {
        div.dataset.drawn = "1";
        pending -= 1;
        if (pending === 0) { document.body.dataset.plotsDrawn = String(plots.length); }
      });
  });
});
