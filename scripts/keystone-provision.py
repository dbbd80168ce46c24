"""Creates the projects, roles, users and catalog entries snapstore's tests need in a freshly bootstrapped
Keystone (called by keystone.sh, which documents what is made). Writes KEY=VALUE lines to $KS_ENV.

Only the standard library: it runs with the system python3 that serves Keystone itself."""
import json
import os
import secrets
import http.client
import time
import urllib.error
import urllib.request

URL = os.environ['KS_URL'].rstrip('/') + '/v3'


def call(method, path, body=None, token=None):
    """One request; a 500 ("database is locked": sqlite under a loaded machine, nothing written) or a lost
    connection is tried again, up to five times."""
    for attempt in range(5):
        try:
            return call_once(method, path, body, token)
        except urllib.error.HTTPError as err:
            if err.code != 500 or attempt == 4:
                raise
        except (urllib.error.URLError, http.client.RemoteDisconnected, ConnectionError):
            if attempt == 4:
                raise
        time.sleep(1 + attempt)


def call_once(method, path, body, token):
    req = urllib.request.Request(URL + path, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header('Content-Type', 'application/json')
    if token:
        req.add_header('X-Auth-Token', token)
    with urllib.request.urlopen(req, timeout=30) as res:
        text = res.read().decode()
        return res.headers.get('X-Subject-Token'), (json.loads(text) if text else None)


def admin_token():
    body = {'auth': {
        'identity': {'methods': ['password'], 'password': {'user': {
            'name': 'admin', 'domain': {'id': 'default'}, 'password': os.environ['KS_ADMIN_PW']}}},
        'scope': {'project': {'name': 'admin', 'domain': {'id': 'default'}}}}}
    token, _ = call('POST', '/auth/tokens', body)
    return token


class AdminToken:
    """The admin's token, issued again when two seconds old: tests run Keystone with tokens of a few seconds."""
    value, issued = None, 0.0

    def __call__(self):
        if time.monotonic() - self.issued > 2:
            self.value, self.issued = admin_token(), time.monotonic()
        return self.value


def main():
    tok = AdminToken()
    env = {'url': os.environ['KS_URL'], 'admin_password': os.environ['KS_ADMIN_PW']}

    def create(kind, body):
        _, res = call('POST', f'/{kind}s', {kind: body}, tok())
        return res[kind]['id']

    def role_id(name):
        _, res = call('GET', f'/roles?name={name}', None, tok())
        return res['roles'][0]['id'] if res['roles'] else create('role', {'name': name})

    def grant(project, user, role):
        call('PUT', f'/projects/{project}/users/{user}/roles/{role_id(role)}', None, tok())

    # The `service` role first: bootstrap does not make it, and in Zed a role created after the grants
    # below fails with "database is locked" under sqlite.
    role_id('service')
    projects = {name: create('project', {'name': name, 'domain_id': 'default'}) for name in ('service', 'demo')}
    users = (('member', 'demo', 'member'), ('glance', 'service', 'admin'), ('nova', 'service', 'service'))
    for name, project, role in users:
        password = secrets.token_urlsafe(18)
        user = create('user', {'name': name, 'password': password, 'domain_id': 'default'})
        grant(projects[project], user, role)
        env[f'{name}_password'] = password
        env[f'{name}_id'] = user
    for name, project in projects.items():
        env[f'{name}_project_id'] = project
    image_url = os.environ.get('KS_IMAGE_URL')
    if image_url:
        service = create('service', {'type': 'image', 'name': 'glance'})
        env['image_service_id'] = service
        for interface in ('public', 'internal'):
            env[f'image_{interface}_endpoint_id'] = create('endpoint', {
                'service_id': service, 'interface': interface, 'url': image_url, 'region_id': 'RegionOne'})
    with open(os.environ['KS_ENV'], 'w', opener=lambda p, f: os.open(p, f, 0o600)) as out:
        out.writelines(f'{k}={v}\n' for k, v in env.items())


main()
