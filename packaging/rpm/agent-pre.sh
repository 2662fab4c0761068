# The unprivileged user of both callhome packages; no login, no home of its own.
getent group callhome >/dev/null || groupadd -r callhome
getent passwd callhome >/dev/null || \
    useradd -r -g callhome -d /nonexistent -s /sbin/nologin -c "callhome health-check service" callhome
exit 0
