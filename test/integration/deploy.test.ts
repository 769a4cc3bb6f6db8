import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dashboardExprs, DEPLOY, metricNames } from '../support/deploy-files.js';

const promtool = (args: string[], cwd = DEPLOY) => spawnSync('promtool', args, { cwd, encoding: 'utf8' });
const tmp = mkdtempSync(join(tmpdir(), 'yoco-deploy-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('deploy/: alerts and dashboard', () => {
  it('the alert rules pass promtool check rules and their unit tests (promtool test rules)', () => {
    const check = promtool(['check', 'rules', 'prometheus/alerts.yml']);
    expect(check.error, 'promtool (Debian package prometheus) is needed').toBeUndefined();
    expect(check.status, check.stdout + check.stderr).toBe(0);
    expect(check.stdout).toContain('SUCCESS: 6 rules found');
    const test = promtool(['test', 'rules', 'alerts.test.yml'], join(DEPLOY, 'prometheus'));
    expect(test.status, test.stdout + test.stderr).toBe(0);
  });

  it('every dashboard panel is valid PromQL (checked as recording rules) over series the services export', () => {
    const exprs = dashboardExprs();
    expect(exprs.length).toBeGreaterThanOrEqual(15);
    const rules = { groups: [{ name: 'dashboard', rules: exprs.map((expr, i) => ({ record: `yoco:dashboard_panel_${i}`, expr })) }] };
    writeFileSync(join(tmp, 'dashboard-rules.yml'), JSON.stringify(rules));
    const check = promtool(['check', 'rules', join(tmp, 'dashboard-rules.yml')]);
    expect(check.status, check.stdout + check.stderr).toBe(0);
    // Every series named exists in the source (the metrics test checks them against live scrapes).
    const source = spawnSync('grep', ['-rhoE', "['\"]yoco_[a-z_]+['\"]", 'packages', 'services', '--include=*.ts'], { cwd: join(DEPLOY, '..'), encoding: 'utf8' }).stdout;
    const registered = new Set([...source.matchAll(/yoco_[a-z_]+/g)].map((m) => m[0]));
    const alerts = readFileSync(join(DEPLOY, 'prometheus/alerts.yml'), 'utf8');
    for (const name of metricNames([...exprs, alerts])) expect(registered.has(name), name).toBe(true);
  });
});
