/* Course badge form: show only the fields of the chosen criterion (fields with an error always stay visible). */
(function () {
    "use strict";
    var FIELDS = {
        grade_at_least: ["grade_threshold", "confirm_small_threshold"],
        certificate: ["certificate_modes"]
    };

    function rows(name) {
        return document.querySelectorAll(".field-" + name);
    }

    function sync(criterion) {
        Object.keys(FIELDS).forEach(function (key) {
            FIELDS[key].forEach(function (name) {
                rows(name).forEach(function (row) {
                    var hasError = row.querySelector(".errorlist") !== null;
                    row.style.display = key === criterion.value || hasError ? "" : "none";
                });
            });
        });
    }

    document.addEventListener("DOMContentLoaded", function () {
        var criterion = document.getElementById("id_criterion");
        if (!criterion) {
            return;
        }
        criterion.addEventListener("change", function () { sync(criterion); });
        sync(criterion);
    });
}());
