import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';
const s = new Session();
s.connect();
s.post('Profiler.enable');
s.post('Profiler.setSamplingInterval', { interval: 200 });
process.on('SIGUSR1', () => s.post('Profiler.start'));
process.on('SIGUSR2', () => s.post('Profiler.stop', (err, r) => { if (!err) writeFileSync(`${process.env.PROF_OUT}`, JSON.stringify(r.profile)); }));
