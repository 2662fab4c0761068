# Upgrade: restart the service if it runs, so that the new binary takes over.
if [ "$1" -ge 1 ]; then
    systemctl try-restart callhome-agent.service >/dev/null 2>&1 || :
fi
# RPM has no purge: /var/lib/callhome-agent is kept on erase; remove it by hand to forget the host.
exit 0
