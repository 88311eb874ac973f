import { useEffect, useState, type AnchorHTMLAttributes, type MouseEvent } from 'react';

// The whole view lives in the address (path + query), so any view can be shared as a link; these
// few lines over the History API are all the routing three pages need.
const NAVIGATE_EVENT = 'detl:navigate';

/** Current path and query, re-rendered on every navigation. */
export function useLocation(): { path: string; search: URLSearchParams } {
  const [location, setLocation] = useState(() => ({ path: window.location.pathname, search: window.location.search }));
  useEffect(() => {
    const update = () => setLocation({ path: window.location.pathname, search: window.location.search });
    window.addEventListener('popstate', update);
    window.addEventListener(NAVIGATE_EVENT, update);
    return () => {
      window.removeEventListener('popstate', update);
      window.removeEventListener(NAVIGATE_EVENT, update);
    };
  }, []);
  return { path: location.path, search: new URLSearchParams(location.search) };
}

/** Goes to `to` inside the app; `replace` keeps typing in a filter from flooding the back button. */
export function navigate(to: string, options: { replace?: boolean } = {}): void {
  if (options.replace) window.history.replaceState(null, '', to);
  else window.history.pushState(null, '', to);
  window.dispatchEvent(new Event(NAVIGATE_EVENT));
}

/** An `<a>` that navigates inside the app on a plain click and behaves as a link otherwise (new tab, copy). */
export function Link({ to, ...props }: AnchorHTMLAttributes<HTMLAnchorElement> & { to: string }) {
  const onClick = (event: MouseEvent<HTMLAnchorElement>) => {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(to);
    window.scrollTo(0, 0);
  };
  return <a href={to} onClick={onClick} {...props} />;
}
