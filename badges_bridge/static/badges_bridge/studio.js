/* The course team's badges page: light progressive enhancement; everything works without it. */
(function () {
  "use strict";
  document.documentElement.classList.add("bb-js");

  // The error summary: read first, and its links move the focus to the field.
  var summary = document.getElementById("bb-error-summary");
  if (summary) { summary.focus(); }

  // The criterion's own fields: only those of the chosen criterion are shown.
  var form = document.getElementById("bb-badge-form");
  if (form) {
    var subs = form.querySelectorAll("[data-bb-when]");
    var showChosen = function () {
      var chosen = form.querySelector("input[name=criterion]:checked");
      subs.forEach(function (sub) { sub.hidden = !chosen || sub.getAttribute("data-bb-when") !== chosen.value; });
    };
    form.querySelectorAll("input[name=criterion]").forEach(function (radio) {
      radio.addEventListener("change", showChosen);
    });
    showChosen();
    addSeriesRows(form);
    showQuantity(form);
  }

  // "At least N" courses: the number is asked only then.
  function showQuantity(form) {
    var number = form.querySelector(".bb-for-some");
    if (!number) { return; }
    var update = function () {
      var chosen = form.querySelector("input[name=series_quantity]:checked");
      number.hidden = (!chosen || chosen.value !== "some") && !number.classList.contains("bb-field-invalid");
    };
    form.querySelectorAll("input[name=series_quantity]").forEach(function (radio) {
      radio.addEventListener("change", update);
    });
    update();
  }

  // A course of the series: only the threshold of a grade condition, only the modes of a certificate.
  function showRowFields(row) {
    var select = row.querySelector("select");
    if (!select) { return; }
    row.querySelectorAll(".bb-for-grade_at_least, .bb-for-certificate").forEach(function (field) {
      field.hidden = !field.classList.contains("bb-for-" + select.value) && !field.classList.contains("bb-field-invalid");
    });
  }

  function watchRow(row) {
    var select = row.querySelector("select");
    if (select) { select.addEventListener("change", function () { showRowFields(row); }); }
    showRowFields(row);
  }

  // "Add a course": a new blank row of the series, focused.
  function addSeriesRows(form) {
    var button = form.querySelector("[data-bb-add-row]");
    var template = document.getElementById("bb-series-empty");
    var total = form.querySelector("input[name=series-TOTAL_FORMS]");
    var rows = form.querySelector("[data-bb-rows]");
    if (!button || !template || !total || !rows) { return; }
    rows.querySelectorAll("[data-bb-series-row]").forEach(watchRow);
    button.hidden = false;
    button.addEventListener("click", function () {
      var index = parseInt(total.value, 10);
      var html = template.innerHTML.replace(/__prefix__/g, index).replace(/__number__/g, index + 1);
      rows.insertAdjacentHTML("beforeend", html);
      total.value = index + 1;
      watchRow(rows.lastElementChild);
      var first = rows.lastElementChild.querySelector("input, select");
      if (first) { first.focus(); }
    });
  }

  // The backfill's progress, refreshed while it runs.
  var backfill = document.getElementById("bb-backfill");
  var progress = backfill && backfill.querySelector("[data-bb-running='1']");
  if (progress && window.fetch) {
    var state = document.getElementById("bb-backfill-state");
    var bar = document.getElementById("bb-backfill-bar");
    var poll = function () {
      fetch(backfill.getAttribute("data-bb-status"), {credentials: "same-origin", headers: {Accept: "application/json"}})
        .then(function (response) { return response.json(); })
        .then(function (run) {
          if (!run.state) { return; }
          if (state.textContent.trim() !== run.text) { state.textContent = run.text; }
          bar.max = run.total || 1;
          bar.value = run.total ? run.read : (run.running ? 0 : 1);
          if (run.running) { window.setTimeout(poll, 2000); }
        })
        .catch(function () { window.setTimeout(poll, 5000); });
    };
    window.setTimeout(poll, 1000);
  }
})();
