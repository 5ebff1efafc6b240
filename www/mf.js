/* microfunnel loader: see crates/browser/LOADER.md */
(function(w,d,n){var s=d.currentScript||d.querySelector('script[data-site]');if(!s||w.mf&&w.mf.l)return;
var A=function(k){return s.getAttribute('data-'+k)},src=s.src,md=A('consent')||'',q=(w.mf&&w.mf.q)||[],o=q.slice(),
S={calls:[],gcm:[],gpc:n.globalPrivacyControl===true,dnt:n.doNotTrack=='1',respect_dnt:A('respect-dnt')!=null},
M,L,T=0,E=d.documentElement,C=E.classList,bot=!w.mf_allow_bots&&(n.webdriver||/headless|bot|crawl/i.test(n.userAgent)),
R=function(f){d.readyState=='loading'?d.addEventListener('DOMContentLoaded',f):f()},st=d.createElement('style');
q.length=0;st.textContent='html:not(.mf-d) [data-mf-tier]{visibility:hidden}';d.head.appendChild(st);
setTimeout(R,300,function(){C.contains('mf-d')||d.querySelectorAll('[data-mf-tier]').forEach(function(x){
/\bcold\b/.test(x.getAttribute('data-mf-tier'))||x.style.setProperty('display','none','important')});C.add('mf-d')});
function ok(){var e={},g={},u={},t=S.tcf,k;S.calls.forEach(function(c){if(/-all$/.test(c))e={analytics:c>'e',personalization:c>'e'};else for(k in c)e[k]=c[k]});
S.gcm.forEach(function(c){for(k in c[2])c[1]=='update'?g[k]=u[k]=c[2][k]:u[k]||(g[k]=c[2][k])});
return['analytics','personalization'].some(function(p,i){return e[p]!=null?e[p]:!(S.dnt&&S.respect_dnt)&&(t&&t.gdprApplies?
[1,i?5:8,i?6:9].every(function(x){return t.purposeConsents[x]===true}):g[p+'_storage']=='granted')})}
function sy(){if(!bot&&!T)M?M.cmd(['_signals',S]):ok()&&ld()}
function run(a){var r=M.cmd(a);a.r&&a.r(r);return r}
function ld(){if(L)return;L=1;var u=function(p){return new URL('pkg/microfunnel'+p,src)};
import(u('.js')).then(function(m){return m.default({module_or_path:u('_bg.wasm')}).then(function(){R(function(){
m.cmd(['_init',{site:A('site'),api:A('api')||u('').origin,spa:A('spa')}]);M=m;sy();q.splice(0).forEach(run)})})}).catch(function(){L=0})}
function mf(){var a=[].slice.call(arguments);if(a[0]=='consent'){S.calls.push(a[1]);M||ok()||q.splice(0).forEach(function(a){a.r&&a.r(null)});return sy()}
if(a[0]=='score')return new Promise(function(r){a.r=r;M?run(a):q.push(a)});return M?run(a):void q.push(a)}
mf.l=1;w.mf=mf;
function g(a){a&&a[0]=='consent'&&a[2]&&S.gcm.push([].slice.call(a))}
var dl=w.dataLayer;if(md=='gcm'&&!dl)dl=w.dataLayer=[];
if(dl&&/^(gcm)?$/.test(md)){dl.forEach(g);var P=dl.push;dl.push=function(){var r=P.apply(dl,arguments);[].forEach.call(arguments,g);sy();return r}}
if(w.__tcfapi&&/^(tcf)?$/.test(md)){T=setTimeout(function(){T=0;sy()},500);try{w.__tcfapi('addEventListener',2,function(t,k){
if(k&&/^(tcloaded|useractioncomplete)$/.test(t.eventStatus)){S.tcf={gdprApplies:!!t.gdprApplies,purposeConsents:(t.purpose||{}).consents||{}};clearTimeout(T);T=0;sy()}})}catch(e){T=0}}
o.forEach(function(a){mf.apply(0,a)});sy();if(md=='banner'){st=d.createElement('script');st.src=new URL('banner.js',src);d.head.appendChild(st)}})(window,document,navigator);
