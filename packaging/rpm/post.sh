# %post of picket-agent and picket-collector (rpm fills in the name): the system user
# and the state directory, 0700. $1 = 1 on install, 2 on upgrade.
name="%{NAME}"
if command -v systemd-sysusers >/dev/null 2>&1; then
    systemd-sysusers "$name.conf"
elif ! getent passwd "$name" >/dev/null; then
    useradd --system --user-group --no-create-home --home-dir "/var/lib/$name" \
        --shell /sbin/nologin --comment "Picket $name" "$name"
fi
install -d -m 0700 -o "$name" -g "$name" "/var/lib/$name"
chmod 0700 "/var/lib/$name"
chown -R "$name:$name" "/var/lib/$name"
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -eq 1 ]; then
        systemctl --no-reload preset "$name.service" >/dev/null 2>&1 || :
    else
        systemctl try-restart "$name.service" >/dev/null 2>&1 || :
    fi
fi
