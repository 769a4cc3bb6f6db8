/**
 * Options over their defaults, where an option given as undefined takes its
 * default: callers pass their flags through as they are (`{ epochs: flag }`),
 * and a plain spread would let that undefined win.
 */
export function withDefaults<D extends object, O extends object>(defaults: D, options: O): D & O {
  return { ...defaults, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) } as D & O;
}
