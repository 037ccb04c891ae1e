# %preun of picket-agent and picket-collector: stop and disable on erase ($1 = 0), not
# on upgrade.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl --no-reload disable --now "%{NAME}.service" >/dev/null 2>&1 || :
fi
