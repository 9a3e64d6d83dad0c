// A session that expired while a page was open: Dash's requests get 401, so go to the
// sign-in page and come back here afterwards instead of showing stale numbers.
(function () {
    var fetchOriginal = window.fetch;
    window.fetch = function () {
        return fetchOriginal.apply(this, arguments).then(function (response) {
            if (response.status === 401 && response.url.indexOf("/_dash-") !== -1) {
                var back = window.location.pathname + window.location.search;
                window.location.assign("/login?next=" + encodeURIComponent(back));
            }
            return response;
        });
    };
})();
