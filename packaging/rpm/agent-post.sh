install -d -m 0750 -o callhome -g callhome /var/lib/callhome-agent
# Fresh install: enabled, not started (the agent waits for its credential, the collector for its
# config). Works without a running systemd (image builds).
if [ "$1" -eq 1 ]; then
    systemctl enable callhome-agent.service >/dev/null 2>&1 || :
fi
exit 0
