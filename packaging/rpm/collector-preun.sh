# Erase (not upgrade): stop and disable.
if [ "$1" -eq 0 ]; then
    systemctl --no-reload disable --now callhome-collector.service >/dev/null 2>&1 || :
fi
exit 0
