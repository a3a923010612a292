import { mount } from 'svelte';
import '@xterm/xterm/css/xterm.css';
import './style.css';
import App from './App.svelte';

mount(App, { target: document.getElementById('app')! });
